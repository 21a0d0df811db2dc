#!/usr/bin/env bash
# Train the models behind the trained rows of the label-recovery benchmark (README), on the
# Fashion-MNIST folder that Debian's dataset-fashion-mnist installs. Checkpoints go to
# ${1:-checkpoints}/; existing ones are kept (gradleak train refuses to overwrite them).
# Runtime on the 2-core CPU machine: LeNet about 1 min each, ResNet18 (20,000 images, 1 epoch)
# about 6 min each.
set -euo pipefail
out="${1:-checkpoints}"
for augment in smoothing:0.1 mixup:1; do
  name="${augment/:/-}"
  [ -f "$out/lenet-fashion-mnist-$name.safetensors" ] ||
    gradleak train --model lenet --dataset fashion-mnist --augment "$augment" --epochs 15 \
      --out "$out/lenet-fashion-mnist-$name.safetensors"
  [ -f "$out/resnet18-fashion-mnist-$name.safetensors" ] ||
    gradleak train --model resnet18 --dataset fashion-mnist --augment "$augment" --epochs 1 \
      --train-limit 20000 --lr 2e-3 --out "$out/resnet18-fashion-mnist-$name.safetensors"
done
# The trained rows: each model attacked with the family it was trained with, on test images it
# never saw (the config names these checkpoints under checkpoints/).
[ "$out" = checkpoints ] && gradleak run table2-trained
