"""The Visual Decathlon: the score, the reference protocol and the adapter comparison.

- `scoring`: the Decathlon score S and the published table (Rebuffi et al. 2017);
- `protocol`: the training modes, one domain after another from a source network;
- `compare`: every mode on small real domains (``keras-wrn decathlon compare``);
- `report`: the comparison's Markdown table.
"""

from keras_wrn.decathlon.compare import compare_modes
from keras_wrn.decathlon.protocol import TRAINING_MODES, domain_model, load_source, train_decathlon
from keras_wrn.decathlon.report import comparison_table
from keras_wrn.decathlon.scoring import BASELINE_ERRORS, DOMAINS, PUBLISHED, domain_scores, score

__all__ = ["BASELINE_ERRORS", "DOMAINS", "PUBLISHED", "TRAINING_MODES", "compare_modes", "comparison_table",
           "domain_model", "domain_scores", "load_source", "score", "train_decathlon"]
