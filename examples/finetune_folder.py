"""Fine-tune trained weights on your own folder of images with plain `model.fit`.

    python examples/finetune_folder.py runs/wrn-16-1/best.weights.h5 photos/ --epochs 5 [--freeze-backbone]

photos/ holds one sub-folder per class (photos/cat/*.jpg, photos/dog/*.jpg).
The network is rebuilt with a new classifier for these classes; every other
layer gets the trained weights (`weights=` loads the backbone when the class
count differs, as keras.applications does).  With --freeze-backbone only the
new head trains; frozen BatchNorm layers then run in inference mode.
The same in one command: keras-wrn finetune wrn-16-1 --weights W --data D --out RUN.
"""

import argparse

import keras

import keras_wrn
from keras_wrn.data import CIFAR10_MEAN, CIFAR10_STD, normalize
from keras_wrn.optimizers import CoupledWeightDecaySGD

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("weights")
parser.add_argument("folder")
parser.add_argument("--model", default="wrn-16-1")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--image-size", type=int, default=32)
parser.add_argument("--freeze-backbone", action="store_true")
parser.add_argument("--out", default="finetuned.weights.h5")
args = parser.parse_args()

size = (args.image_size, args.image_size)
train_set, val_set = keras.utils.image_dataset_from_directory(
    args.folder, image_size=size, batch_size=32, validation_split=0.2, subset="both", seed=0)
classes = len(train_set.class_names)
mean, std = CIFAR10_MEAN, CIFAR10_STD  # normalise as the source network was trained
augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomTranslation(0.125, 0.125)])
train_set = train_set.map(lambda x, y: (augment(normalize(x, mean, std), training=True), y))
val_set = val_set.map(lambda x, y: (normalize(x, mean, std), y))

model = keras_wrn.create_model(args.model, classes=classes, input_shape=size + (3,), weights=args.weights,
                               compile=False)
if args.freeze_backbone:
    for layer in model.layers:
        layer.trainable = layer.name == "predictions"
model.compile(optimizer=CoupledWeightDecaySGD(learning_rate=0.01, l2=5e-4),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(train_set, validation_data=val_set, epochs=args.epochs, verbose=2)
print(f"validation accuracy {100 * history.history['val_accuracy'][-1]:.2f}% on {classes} classes")
model.save_weights(args.out)
