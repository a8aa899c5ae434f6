"""Write a plain ``<class>/*.png`` folder of real images, the layout a user's own photos have.

    python examples/write_photo_folder.py OUT [--classes 5] [--size 32]

The images are scikit-learn's handwritten digits (UCI, 8x8 grey levels), classes
0..K-1, upsampled to ``--size`` pixels and written as RGB PNGs into ``OUT/<digit>/``:
a small real domain unlike CIFAR-10, for trying `keras-wrn finetune` on a folder
that has no train/test split.
"""

import argparse
import os

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the folder to create (must not exist)")
    parser.add_argument("--classes", type=int, default=5, help="digits 0..K-1 (default 5)")
    parser.add_argument("--size", type=int, default=32, help="side of the written images (default 32)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        raise SystemExit(f"{args.out} exists; choose a new folder (nothing is overwritten).")
    if not 2 <= args.classes <= 10:
        raise SystemExit(f"--classes {args.classes}: expected 2 to 10.")
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        if label >= args.classes:
            continue
        grey = np.kron(image / 16.0 * 255.0, np.ones((4, 4)))  # 8x8 -> 32x32, nearest neighbour
        rgb = keras.ops.convert_to_numpy(keras.ops.image.resize(np.repeat(grey[..., None], 3, -1), (args.size,) * 2))
        folder = os.path.join(args.out, str(label))
        os.makedirs(folder, exist_ok=True)
        keras.utils.save_img(os.path.join(folder, f"{index:04d}.png"), np.clip(rgb, 0, 255).astype("uint8"))
    print(f"wrote {sum(len(files) for _, _, files in os.walk(args.out))} images into {args.out}/<0..{args.classes - 1}>/")


if __name__ == "__main__":
    main()
