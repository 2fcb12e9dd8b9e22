"""Thin script: see optfusion_tf.cli.local_workers (flags: --help).

    python tools/local_workers.py --workers=2 -- python search.py --strategy=multi_worker ...
"""

from optfusion_tf.cli.local_workers import main

if __name__ == "__main__":
    main()
