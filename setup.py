from glob import glob

from setuptools import find_packages, setup

setup(
    name="vqcodec",
    version="0.1.0",
    description="VQ-VAE speech codec: speech to discrete tokens and back (van den Oord et al. 2017)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["vqcodec", "vqcodec.*"]),
    include_package_data=True,
    package_data={"vqcodec": ["py.typed"]},
    install_requires=[
        "torch>=2.1",
        "numpy",
        "soundfile",
        "librosa",
        "soxr",
        "click>=8",
        "tqdm",
        "constriction>=0.4",  # range coder for entropy-coded .vqc files (vqcodec/entropy.py)
        "tomli>=1.1; python_version<'3.11'",
        "tomli-w",
    ],
    extras_require={
        # resemblyzer for speaker similarity: pip install webrtcvad-wheels && pip install --no-deps resemblyzer
        "eval": ["pesq", "pystoi", "webrtcvad-wheels", "matplotlib"],
        "analysis": ["matplotlib", "pocketsphinx>=5", "scikit-learn>=1.2"],  # MFCC k-means baseline
        "dev": ["pytest", "hypothesis"],
    },
    # the shipped models; vqcodec.pretrained finds them under sys.prefix when not run from a clone
    data_files=[("share/vqcodec/pretrained", sorted(glob("pretrained/*.pt")) + ["pretrained/MODEL_CARD.md"]),
                ("share/vqcodec/pretrained/examples", sorted(glob("pretrained/examples/*")))],
    entry_points={"console_scripts": ["vqcodec=vqcodec.cli:main"]},
)
