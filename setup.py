"""optfusion-tf: TensorFlow/Keras implementation of OptFusion (WSDM '25)."""

from setuptools import find_packages, setup

setup(
    name="optfusion_tf",
    version="0.1.0",
    description="OptFusion: learning fusion connections and operations in deep CTR models (TF/Keras 3)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["optfusion_tf", "optfusion_tf.*"]),
    # Ranges we have installed and run the test suite with (see README, "Dependencies").
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "numpy>=1.26,<2.5",
        "pandas>=2.2,<3.2",
        "absl-py>=2.1,<3",
        "scikit-learn>=1.5,<1.10",
        "matplotlib>=3.9,<3.12",
        "google-crc32c>=1.5,<2",
        "pyarrow>=25.0.1,<27",
    ],
    extras_require={
        # The TF Serving client (PredictRequest, PredictionService stub): tools/serving_smoke.py
        # --grpc_target and the README's gRPC example; the tests check both against a stand-in.
        "serving": ["tensorflow-serving-api>=2.21,<2.22"],
        "test": ["pytest>=8,<10", "tensorflow-serving-api>=2.21,<2.22"],
        "bench": ["psutil>=5.9,<8"],
        # DeepCTR beside our models in bench/peers.py (legacy Keras, run in its own process).
        "peers": ["deepctr==0.9.4", "tf-keras>=2.21,<2.22"],
        # --runner=beam of the preprocessing CLIs (apache-beam 2.77 needs pyarrow < 26, hence
        # pyarrow's range above, tested with 25.0.1 and 26.0.1).
        "beam": ["apache-beam>=2.77,<2.78"],
    },
    entry_points={
        "console_scripts": [
            "optfusion-demo=optfusion_tf.demo.demo:run",
            "criteo2TF=optfusion_tf.cli.preprocess_flags:criteo2tf",
            "avazu2TF=optfusion_tf.cli.preprocess_flags:avazu2tf",
            "kdd2TF=optfusion_tf.cli.preprocess_flags:kdd2tf",
            "csv2TF=optfusion_tf.cli.csv2tf:run",
            "optfusion-search=optfusion_tf.cli.train_main:search",
            "optfusion-retrain=optfusion_tf.cli.train_main:retrain",
            "optfusion-export=optfusion_tf.cli.export_savedmodel:run",
            "optfusion-local-workers=optfusion_tf.cli.local_workers:main",
        ]
    },
)
