"""The ``keras-wrn`` command line.

    keras-wrn list [PATTERN]
    keras-wrn summary NAME [--classes N] [--input-shape H,W,C]
    keras-wrn plot NAME OUT.png [--classes N] [--input-shape H,W,C] [--dpi DPI]
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
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    from keras_wrn.plotting import GraphvizMissingError

    try:
        args.run(args)
    except (ValueError, GraphvizMissingError) as error:
        print(f"keras-wrn {args.command}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
