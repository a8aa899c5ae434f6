"""keras_wrn demo, offline: released weights -> evaluation on the bundled sample -> summary -> plot.

    python examples/demo.py [--weights NAME] [--out demo_out]

1. loads the default released model by its name (`keras-wrn weights list`), checking
   its sha256; the release's normalisation is part of the model;
2. classifies three raw sample images with `decode_predictions`, then evaluates the
   1,000 bundled cifar10-jpeg test images (raw pixels) and prints the top-1 error
   next to the figure recorded in the manifest;
3. prints the model summary (parameters, MACs, activation memory);
4. writes the architecture plot and the confusion matrix to --out.
Nothing is downloaded in the checkout (the files are in weights/).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_wrn  # noqa: E402
from keras_wrn import weights as registry  # noqa: E402
from keras_wrn.data import load_data  # noqa: E402
from keras_wrn.data.datasets import SAMPLE_NAME  # noqa: E402
from keras_wrn.plotting import GraphvizMissingError  # noqa: E402
from keras_wrn.training import evaluate  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="a released weights name (default: WRN-16-1's default)")
    parser.add_argument("--out", default="demo_out", help="where the plot and the confusion matrix go")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    name = args.weights or registry.default_weights("wrn-16-1")
    entry = registry.weights_info(name)
    recorded = next(m for m in entry["metrics"] if m["data"] == SAMPLE_NAME)
    print(f"released weights: {name} ({entry['model']}, {entry['parameters']:,} parameters, trained on "
          f"{entry['dataset']} with the {entry['training']['recipe']!r} recipe for {entry['training']['epochs']} epochs)")

    start = time.perf_counter()
    model = keras_wrn.create_model(name)  # the release's architecture, weights and normalisation
    print(f"built and loaded in {time.perf_counter() - start:.1f} s (sha256 {entry['sha256'][:16]}... verified)")

    sample = load_data(SAMPLE_NAME, splits=("test",))
    images, labels = sample["x_test"][:3], sample["y_test"][:3]  # raw 0-255 RGB, straight from the JPEGs
    decoded = keras_wrn.decode_predictions(model.predict(images.astype("float32"), verbose=0), weights=name, top=2)
    for row, label in zip(decoded, labels):
        guesses = ", ".join(f"{class_name} {score:.2f}" for _, class_name, score in row)
        print(f"  a {sample['class_names'][label]} image (raw pixels) -> {guesses}")

    start = time.perf_counter()
    confusion = os.path.join(args.out, f"confusion-{name}-sample.png")
    result = evaluate(entry["model"], name, SAMPLE_NAME, confusion_png=confusion)
    seconds = time.perf_counter() - start
    print(f"\ntop-1 error on the bundled sample ({result['images']} cifar10-jpeg test images): "
          f"{100 * result['top1_error']:.2f}%  (manifest: {100 * recorded['top1_error']:.2f}%; "
          f"full test split: {100 * entry['metrics'][0]['top1_error']:.2f}%)  [{seconds:.1f} s]")
    worst = min(result["per_class_accuracy"].items(), key=lambda item: item[1])
    best = max(result["per_class_accuracy"].items(), key=lambda item: item[1])
    print(f"per class: best {best[0]} {100 * best[1]:.0f}%, worst {worst[0]} {100 * worst[1]:.0f}%; "
          f"confusion matrix: {confusion}\n")

    keras_wrn.summary(model)
    try:
        plot = keras_wrn.plot_architecture(model, os.path.join(args.out, f"{entry['model']}.png"))
        print(f"architecture plot: {plot}")
    except GraphvizMissingError as missing:
        print(f"architecture plot skipped: {missing}")
    if round(result["top1_error"], 6) != recorded["top1_error"]:
        raise SystemExit("demo failed: the sample error differs from the manifest's")
    return result


if __name__ == "__main__":
    main()
