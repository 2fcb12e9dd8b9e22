"""python -m optfusion_tf.demo: the end-to-end demo job (optfusion_tf.demo.demo)."""

from optfusion_tf.demo.demo import run

run()
