"""Facts of the Fashion-MNIST dataset, in one light module (no torch): every module that needs
the class names, the image size or the pixel statistics imports them from here."""

from __future__ import annotations

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)  # 10: the network's outputs, a confusion matrix's rows and columns
IMAGE_SIDE = 28  # every image is 28x28 grey pixels
INPUT_FEATURES = IMAGE_SIDE * IMAGE_SIDE  # 784: an image flattened, the network's inputs
MEAN, STD = 0.2860, 0.3530  # training-set pixel statistics on [0, 1]
