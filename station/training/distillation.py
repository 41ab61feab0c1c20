"""Knowledge distillation (Hinton, Vinyals and Dean 2015): a trained classifier's softened outputs
as a second training target for another classifier of the same classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from station.ml.cards import ModelCard, ModelLoadError, load_model


class DistillationError(ValueError):
    """The teacher cannot teach this run (another task, other classes or another input)."""


@dataclass(frozen=True)
class Distillation:
    teacher_dir: Path
    weight: float = 0.5  # alpha: the share of the loss that follows the teacher
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 < self.weight <= 1.0:
            raise DistillationError(f"the distillation weight must be in (0, 1], got {self.weight}")
        if self.temperature <= 0.0:
            raise DistillationError(f"the distillation temperature must be positive, got {self.temperature}")


def load_teacher(distillation: Distillation, student: ModelCard,
                 device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The frozen teacher network and what the card records of it; raises DistillationError when
    it was trained for other classes or on another input than the student's."""
    try:
        teacher, card = load_model(distillation.teacher_dir, device)
    except (ModelLoadError, FileNotFoundError) as exc:
        raise DistillationError(f"teacher {distillation.teacher_dir}: {exc}") from None
    if card.task != "classification":
        raise DistillationError(f"teacher {card.name} is a {card.task} model; distillation needs a classifier")
    if list(card.classes) != list(student.classes):
        raise DistillationError(f"teacher {card.name} names the classes {card.classes}, the data {student.classes}")
    mismatched = [what for what, mine, theirs in (
        ("input mode", student.input_mode, card.input_mode),
        ("input size", student.input_size, card.input_size),
        ("normalisation", (student.preprocessing.mean, student.preprocessing.std),
         (card.preprocessing.mean, card.preprocessing.std))) if mine != theirs]
    if mismatched:
        raise DistillationError(f"teacher {card.name} was trained with another {', '.join(mismatched)} "
                                f"({card.input_mode} {card.input_size}) than this run ({student.input_mode} "
                                f"{student.input_size}); it would see inputs unlike its own")
    teacher.eval().requires_grad_(False)
    return teacher, {"teacher": card.name, "teacher_architecture": card.architecture,
                     "teacher_weights_sha256": card.weights_sha256, "weight": distillation.weight,
                     "temperature": distillation.temperature}


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(teacher ‖ student) of the temperature-softened distributions (Hinton et al., section 2):
    the T² keeps the soft targets' gradients on the scale of the hard targets'."""
    return F.kl_div(F.log_softmax(student_logits.float() / temperature, dim=1),
                    F.log_softmax(teacher_logits.float() / temperature, dim=1),
                    log_target=True, reduction="batchmean") * temperature ** 2
