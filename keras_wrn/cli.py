"""The ``keras-wrn`` command line.

    keras-wrn list [PATTERN]
    keras-wrn summary NAME [--classes N] [--input-shape H,W,C]
    keras-wrn plot NAME OUT.png [--classes N] [--input-shape H,W,C] [--dpi DPI]
    keras-wrn train NAME --data DIR --recipe R --epochs E --out RUN_DIR [--resume]
"""

import argparse
import os
import sys

# Quieter TensorFlow start-up for a command-line tool; set before TF is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _input_shape(text):
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 32,32,3, got {text!r}") from None
    return shape


def _add_model_arguments(parser):
    parser.add_argument("name", help="a registered model name, see `keras-wrn list`")
    parser.add_argument("--classes", type=int, default=None, help="classifier width (default 10)")
    parser.add_argument("--input-shape", type=_input_shape, default=None, help="H,W,C (default 32,32,3)")


def _build(args):
    from keras_wrn.registry import create_model

    return create_model(args.name, classes=args.classes, input_shape=args.input_shape, compile=False)


def _cmd_list(args):
    from keras_wrn.registry import list_models

    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no registered model matches pattern={args.pattern!r}")
    print("\n".join(names))


def _cmd_summary(args):
    from keras_wrn.stats import summary

    summary(_build(args))


def _cmd_plot(args):
    from keras_wrn.plotting import plot_architecture

    path = plot_architecture(_build(args), args.out, dpi=args.dpi)
    print(f"wrote {path}")


def _cmd_train(args):
    from keras_wrn.training import train

    history = train(args.name, args.data, args.out, recipe=args.recipe, epochs=args.epochs,
                    batch_size=args.batch_size, seed=args.seed, resume=args.resume,
                    dropout=args.dropout, limit_train=args.limit_train, verbose=args.verbose)
    if history:
        last = history[-1]
        print(f"epoch {last['epoch']}: test error {100 * (1 - last['val_accuracy']):.2f}% -> {args.out}")


def make_parser():
    parser = argparse.ArgumentParser(prog="keras-wrn", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="list registered model names")
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'wrn-*'")
    listing.set_defaults(run=_cmd_list)

    summary = commands.add_parser("summary", help="parameters, MACs and activation memory of a model")
    _add_model_arguments(summary)
    summary.set_defaults(run=_cmd_summary)

    plot = commands.add_parser("plot", help="draw a model's architecture with keras.utils.plot_model")
    _add_model_arguments(plot)
    plot.add_argument("out", help="output file: .png, .svg, .pdf or .dot")
    plot.add_argument("--dpi", type=int, default=72, help="resolution of a PNG (default 72)")
    plot.set_defaults(run=_cmd_plot)

    train = commands.add_parser("train", help="train with a paper recipe; resumable")
    train.add_argument("name", help="a registered model name")
    train.add_argument("--data", required=True, help="CIFAR python batches or train/ and test/ image folders")
    train.add_argument("--out", required=True, help="run directory (checkpoints, logs, curves)")
    train.add_argument("--recipe", default="wrn", help="wrn, preact, preact-110, ror, adapters (default wrn)")
    train.add_argument("--epochs", type=int, default=None, help="epochs; the recipe's schedule is scaled")
    train.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (128)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dropout", type=float, default=None)
    train.add_argument("--limit-train", type=int, default=None, help="use the first N training images")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress output")
    train.set_defaults(run=_cmd_train)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    from keras_wrn.plotting import GraphvizMissingError

    try:
        args.run(args)
    except (ValueError, FileNotFoundError, GraphvizMissingError) as error:
        print(f"keras-wrn {args.command}: error: {error}", file=sys.stderr)
        return 1 if isinstance(error, GraphvizMissingError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
