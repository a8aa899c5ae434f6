"""Top-1 error, per-class accuracy and a confusion matrix of trained weights.

    python examples/evaluate.py wrn-16-1 runs/wrn-16-1/best.weights.h5 --data DIR
"""

import argparse

from keras_wrn.training import evaluate

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("model")
parser.add_argument("weights")
parser.add_argument("--data", required=True)
parser.add_argument("--confusion", default="confusion.png")
args = parser.parse_args()

result = evaluate(args.model, args.weights, args.data, confusion_png=args.confusion)
print(f"top-1 error {100 * result['top1_error']:.2f}% on {result['images']} images")
for name, accuracy in result["per_class_accuracy"].items():
    print(f"  {name:>12}: {100 * accuracy:6.2f}%")
print(f"confusion matrix: {result['confusion_png']}")
