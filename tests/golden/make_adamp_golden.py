"""Writes adamp_parity.npz: the reference AdamP/SGDP runs of tests/adamp_reference.py.

Needs torch and the adamp package (pip install torch==2.13.0 adamp):

  python tests/golden/make_adamp_golden.py
"""

import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import adamp_reference  # noqa: E402


def main() -> None:
    import importlib.metadata

    import torch

    arrays = {}
    for config in adamp_reference.CONFIGS:
        for key, value in adamp_reference.reference_run(config).items():
            arrays[f"{config}/{key}"] = value
    arrays["meta/versions"] = np.asarray(
        [f"torch {torch.__version__}", f"adamp {importlib.metadata.version('adamp')}"]
    )
    path = HERE / "adamp_parity.npz"
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
