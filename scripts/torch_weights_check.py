#!/usr/bin/env python3
"""PyTorch's side of the weights check (a developer-run check, not part of CI).

Needs torch, torchvision, safetensors and numpy, e.g. in a throwaway venv outside the
repository. scripts/torch-check.sh runs the whole sequence; the subcommands:

  eval    --weights W --inputs I --out P.csv
          Builds the PyTorch model the file's `arch` metadata (or --arch) names, with the
          same tensor names as arbor, loads W strictly, and writes its predictions on the
          inputs `repro eval --save-inputs` wrote, in repro's predictions.csv format.
  train   --arch A --classes C --inputs I --out W [--epochs N]
          Trains that PyTorch model from its own random initialisation (SGD, batch 64) on
          the given inputs, recomputes batch norm's statistics over them, and saves it
          with safetensors.torch.save_file, for `repro eval`.
  compare A.csv B.csv
          Same predicted class share, top-1 of each, largest confidence difference;
          exits 1 unless the issue's bar is met (>= 99.9% agree, top-1 within 0.1 points).
  names   --weights W
          Compares W's tensor names and shapes with torchvision's resnet50 state_dict.
  torchvision --out W
          Saves torchvision's resnet50 (1000 classes) as safetensors, the way the README
          converts the ImageNet-pretrained file (here with its random initialisation,
          since this machine cannot download the pretrained one).
"""
import argparse
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import load_file, save_file, safe_open


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn + option-A shortcut (subsample by 2, zero-pad channels)."""

    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if (stride != 1 or c_in != planes) else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        short = x
        if self.pad is not None:
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    """ResNet-{8,20,32} for 32x32 inputs (He et al. 2016, section 4.2), arbor's names."""

    def __init__(self, blocks_per_stage, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c_in = 16
        for stage, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            layers = []
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(c_in, planes, stride if i == 0 else 1))
                c_in = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.fc(h.mean(dim=(2, 3)))


def build(arch, classes):
    cifar = {"resnet8": 1, "resnet20": 3, "resnet32": 5}
    if arch in cifar:
        return CifarResNet(cifar[arch], classes)
    model = torchvision.models.resnet50(num_classes=classes)
    if arch == "resnet50-places":
        # The Places-LT protocol's one new Bottleneck block after layer4: `layer4.3`.
        model.layer4.append(torchvision.models.resnet.Bottleneck(2048, 512))
    elif arch != "resnet50":
        sys.exit(f"unknown arch {arch}")
    return model


def load_inputs(path):
    t = load_file(path)
    return t["images"], t["labels"]


def file_meta(path):
    with safe_open(path, "pt") as f:
        return f.metadata() or {}


def predictions(model, images, labels):
    model.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(labels), 256):
            logits = model(images[start : start + 256]).double().numpy()
            for j, row in enumerate(logits):
                order = np.argsort(-row, kind="stable")
                conf = 1.0 / np.exp(row - row[order[0]]).sum()
                i = start + j
                rows.append((i, int(labels[i]), int(order[0]), conf, order[:5]))
    return rows


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("index,label,predicted,confidence,top5\n")
        for i, label, pred, conf, top5 in rows:
            f.write(f"{i},{label},{pred},{conf:.6f},{' '.join(map(str, top5))}\n")


def cmd_eval(a):
    meta = file_meta(a.weights)
    arch = a.arch or meta["arch"]
    state = load_file(a.weights)
    model = build(arch, state["fc.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    images, labels = load_inputs(a.inputs)
    write_csv(a.out, predictions(model, images, labels))
    print(f"torch eval of {a.weights} ({arch}) -> {a.out}")


def cmd_train(a):
    torch.manual_seed(a.seed)
    images, labels = load_inputs(a.inputs)
    model = build(a.arch, a.classes)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(labels))
        total = 0.0
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"torch epoch {epoch + 1}: loss {total / len(labels):.4f}")
    # A few epochs leave the running statistics far from the data's (momentum 0.1 from
    # 0 and 1), so eval-mode outputs saturate and every image gets the same class: set them
    # to the plain average over one pass ("precise BN"), so the comparison sees varied,
    # unsaturated predictions.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for s in range(0, len(labels), 64):
            model(images[s : s + 64])
    meta = {"format": "pt", "arch": a.arch, "num_classes": str(a.classes)}
    save_file(model.state_dict(), a.out, metadata=meta)
    print(f"saved {a.out}")


def read_csv(path):
    rows = [l.strip().split(",") for l in open(path).readlines()[1:]]
    return {int(r[0]): (int(r[1]), int(r[2]), float(r[3]), r[4]) for r in rows}


def cmd_compare(a):
    x, y = read_csv(a.a), read_csv(a.b)
    if sorted(x) != sorted(y):
        sys.exit("the two files cover different images")
    n = len(x)
    same = sum(x[i][1] == y[i][1] for i in x)
    top1 = [100.0 * sum(r[0] == r[1] for r in d.values()) / n for d in (x, y)]
    dconf = max(abs(x[i][2] - y[i][2]) for i in x)
    agree = 100.0 * same / n
    used = len({r[1] for r in x.values()})
    # The whole top-5 ranking, a sharper test than the argmax when a model is weak.
    same5 = 100.0 * sum(x[i][3] == y[i][3] for i in x) / n
    print(
        f"{n} images, {used} distinct predicted classes: same predicted class {agree:.2f}% ({same}/{n}); "
        f"top-1 {top1[0]:.2f} vs {top1[1]:.2f} (diff {abs(top1[0] - top1[1]):.2f} points); "
        f"same top-5 ranking {same5:.2f}%; max |confidence diff| {dconf:.2e}"
    )
    if agree < 99.9 or abs(top1[0] - top1[1]) > 0.1:
        sys.exit("FAIL: below the bar (>= 99.9% agree, top-1 within 0.1 points)")


def cmd_names(a):
    ours = load_file(a.weights)
    theirs = torchvision.models.resnet50(num_classes=ours["fc.weight"].shape[0]).state_dict()
    bad = [k for k in sorted(set(ours) | set(theirs))
           if k not in ours or k not in theirs or tuple(ours[k].shape) != tuple(theirs[k].shape)
           or ours[k].dtype != theirs[k].dtype]
    print(f"{len(ours)} tensors in the file, {len(theirs)} in torchvision's resnet50; "
          f"{len(bad)} differ in name, shape or dtype")
    for k in bad[:10]:
        print("  ", k)
    if bad:
        sys.exit(1)


def cmd_torchvision(a):
    model = torchvision.models.resnet50()
    save_file(model.state_dict(), a.out, metadata={"format": "pt", "arch": "resnet50"})
    print(f"saved torchvision resnet50 to {a.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--weights", required=True)
    e.add_argument("--inputs", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--arch")
    t = sub.add_parser("train")
    t.add_argument("--arch", required=True)
    t.add_argument("--classes", type=int, required=True)
    t.add_argument("--inputs", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=0.05)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    n = sub.add_parser("names")
    n.add_argument("--weights", required=True)
    v = sub.add_parser("torchvision")
    v.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(2)
    {"eval": cmd_eval, "train": cmd_train, "compare": cmd_compare, "names": cmd_names,
     "torchvision": cmd_torchvision}[a.cmd](a)


if __name__ == "__main__":
    main()
