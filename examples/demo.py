"""keras_wrn demo: build a model, print its summary, draw it, train it a few steps.

    python examples/demo.py [--model wrn-16-2] [--epochs 6] [--out demo_out]

The training data here is generated (a learnable colour-per-class task), so
the demo runs anywhere without downloads; the loss must fall.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_wrn  # noqa: E402


def generated_data(count, colours, rng):
    """Images whose class sets a mean colour, plus noise: learnable in a few steps."""
    labels = rng.integers(0, len(colours), size=count)
    images = colours[labels] + 0.5 * rng.normal(size=(count, 32, 32, 3)).astype("float32")
    return images, labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="wrn-16-2", help="a name from keras_wrn.list_models()")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of 5 steps of batch 32")
    parser.add_argument("--out", default="demo_out", help="where the plot and model are written")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(0)

    start = time.perf_counter()
    model = keras_wrn.create_model(args.model, classes=4)
    print(f"built {args.model} in {time.perf_counter() - start:.1f} s "
          f"(optimizer: {type(model.optimizer).__name__}, l2={model.optimizer.l2})")
    keras_wrn.summary(model)

    plot = keras_wrn.plot_architecture(model, os.path.join(args.out, f"{args.model}.png"))
    print(f"plot: {plot}")

    rng = np.random.default_rng(0)
    colours = rng.normal(size=(4, 1, 1, 3)).astype("float32")
    x, y = generated_data(32 * 5, colours, rng)
    x_val, y_val = generated_data(256, colours, np.random.default_rng(1))
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - start
    losses = history.history["loss"]
    images = 32 * 5 * args.epochs
    print(f"trained {5 * args.epochs} steps of 32 in {seconds:.1f} s ({images / seconds:.0f} images/s, "
          "first epoch includes tracing)")
    print(f"training loss per epoch: {' -> '.join(f'{loss:.3f}' for loss in losses)}")
    held_out = model.evaluate(x_val, y_val, verbose=0)
    print(f"held-out accuracy after {5 * args.epochs} steps: {held_out[1]:.3f} (chance 0.25)")

    path = os.path.join(args.out, f"{args.model}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    same = np.array_equal(model.predict(x_val, verbose=0), reloaded.predict(x_val, verbose=0))
    print(f"saved {path}; reloaded predictions identical: {same}")
    if not (losses[-1] < losses[0] and same):
        raise SystemExit("demo failed: the loss did not fall or the reload differs")
    return history


if __name__ == "__main__":
    main()
