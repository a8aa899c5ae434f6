"""Markdown reports of the Decathlon commands."""

import os

__all__ = ["comparison_table"]


def comparison_table(summary):
    """The Markdown table of a `compare_modes` summary: one row per domain and mode."""
    lines = [f"Source: `{os.path.basename(str(summary['source']))}` (ResNet-26, width factor "
             f"{summary['width_factor']}, {summary['source_parameters']:,} parameters), "
             f"{summary['image_size']}x{summary['image_size']} inputs, adapters recipe, seed {summary['seed']}.",
             "",
             "| domain | mode | test accuracy | after later domains | merged accuracy | trainable params | "
             "domain params | source + domains (x one net) | train time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        merged = f"{100 * row['merged_accuracy']:.2f}%" if "merged_accuracy" in row else "-"
        lines.append(
            f"| {row['domain']} ({row['train_images']}/{row['test_images']}) | {row['mode']} | "
            f"{100 * row['test_accuracy']:.2f}% | {100 * row['accuracy_after_all']:.2f}% | {merged} | "
            f"{row['trainable_parameters']:,} | {row['domain_parameters']:,} | "
            f"{summary['budget'][row['mode']]:.2f}x | {row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"
