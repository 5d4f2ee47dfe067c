#!/usr/bin/env python3
"""Write scikit-learn's handwritten digits as the .npz files `tunnx train` reads.

What it makes (default folder .cache/digits, or the folder given as the first argument)
  train.npz   input float32 [1438,1,8,8] (pixels / 16), label int64 [1438]
  test.npz    input float32 [359,1,8,8], label int64 [359]

The split is the one scripts/make_example_model.py trained the bundled example on: a seeded
permutation (numpy default_rng(0)), the first fifth held out. The data ships inside Debian's
python3-sklearn package (sklearn.datasets.load_digits reads it from disk; nothing is downloaded),
so scripts/demo.sh runs this with Debian's /usr/bin/python3 at set-up.
"""

import pathlib
import sys

import numpy as np
from sklearn.datasets import load_digits

SEED = 0


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/digits")
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(y))
    n_test = len(y) // 5
    test, train = perm[:n_test], perm[n_test:]
    np.savez(out / "train.npz", input=x[train], label=y[train])
    np.savez(out / "test.npz", input=x[test], label=y[test])
    print(f"wrote {out}/train.npz ({len(train)} digits) and {out}/test.npz ({len(test)} digits)")


if __name__ == "__main__":
    main()
