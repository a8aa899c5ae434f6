"""Train a Wide ResNet on CIFAR-10 with the paper's recipe (resumable).

    python examples/train_cifar10.py --data ~/.keras/datasets --out runs/wrn-16-1 --epochs 10

--data is the directory holding cifar-10-batches-py/ (or train/ and test/
image folders, such as the extracted ../shared/data/cifar10-jpeg.tar.gz).
The recipe's schedule (lr 0.1, x0.2 at 30%/60%/80%) is scaled to --epochs.
Stop it at any moment and continue with examples/resume.py.
"""

import argparse

from keras_wrn.training import train

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--model", default="wrn-16-1", help="a name from `keras-wrn list`")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--limit-train", type=int, default=None)
args = parser.parse_args()

history = train(args.model, args.data, args.out, recipe="wrn", epochs=args.epochs,
                limit_train=args.limit_train, verbose=2)
print(f"test error after {len(history)} epochs: {100 * (1 - history[-1]['val_accuracy']):.2f}%")
