"""The inference engine: request -> result, synchronous and Qt-free.

One ``Engine`` per recipe. It loads the recipe's cards and weights once, picks the device,
warms up, and then answers ``run(request)`` calls from one thread at a time (the GUI's worker
thread, the batch reviewer, the latency bench).

Per call: preprocessing from each card (``station.ml.cards.prepare_input``), the classifier
(softmax of logits / the card's temperature: calibrated probabilities), the detector
(``predict`` with the recipe's or the card's thresholds, boxes in image pixels), and, only when
the request asks, attention maps scaled against each card's fixed ``cam_reference``.

On CUDA the networks run under autocast (the classifier in bf16 where supported, the detector
in fp16 for its box coordinates) with channels-last inputs. A CUDA out-of-memory error moves the
engine to the CPU for good, with a logged warning, and the request is answered there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import numpy as np
import torch

from station.devices import describe_device, resolve_device
from station.inference.errors import (
    EngineError,
    IncompatibleModelError,
    InvalidInputError,
    MissingReferenceError,
)
from station.inference.defects import defects_from_detections
from station.inference.image_check import check_frame, route_unfit_frame
from station.inference.loading import LoadedModel, load_for_role
from station.inference.recipes import Recipe
from station.inference.results import (
    AttentionMaps,
    Defect,
    InspectionRequest,
    InspectionResult,
    MaterialCall,
    ModelRef,
)
from station.ml.cam import EigenCam, GradCam, scale_to_reference, to_image_size
from station.ml.cards import CARD_FILE, ModelCard, PreparedInput, prepare_input
from station.ml.tta import predict_with_views

log = logging.getLogger(__name__)

STAGES = ("preprocess", "classifier", "detector", "cam", "total")


class _Stopwatch:
    """Per-stage wall times in ms; on CUDA each lap waits for the GPU so a stage owns its kernels."""

    def __init__(self, device: torch.device) -> None:
        self._sync = torch.cuda.synchronize if device.type == "cuda" else None
        self.timings_ms = {stage: 0.0 for stage in STAGES}

    def now(self) -> float:
        if self._sync is not None:
            self._sync()
        return time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = self.now()
        try:
            yield
        finally:
            self.add(name, self.now() - start)

    def add(self, name: str, seconds: float) -> None:
        self.timings_ms[name] += seconds * 1000.0


class _TimedGradCam(GradCam):
    """Grad-CAM that also reports how long its forward pass took (the rest is the map's cost)."""

    def __init__(self, model: torch.nn.Module, layer_name: str, stopwatch: _Stopwatch) -> None:
        super().__init__(model, layer_name)
        self._stopwatch = stopwatch
        self.forward_seconds = 0.0

    def _top_logit(self, images: torch.Tensor) -> torch.Tensor:
        start = self._stopwatch.now()
        top = super()._top_logit(images)
        self.forward_seconds += self._stopwatch.now() - start
        return top


class Engine:
    """Runs one recipe. ``device`` is "auto" (CUDA when available), "cpu" or "cuda"."""

    def __init__(self, recipe: Recipe, device: str = "auto", warm_up: bool = True) -> None:
        self.recipe = recipe
        self._device = resolve_device(device)
        self._fell_back = False
        self.classifier: LoadedModel | None = None
        self.detector: LoadedModel | None = None
        if recipe.classifier is not None:
            self.classifier = load_for_role("classifier", recipe.model_dir(recipe.classifier), "classification")
            self._check_classifier(self.classifier)
        if recipe.detector is not None:
            self.detector = load_for_role("detector", recipe.model_dir(recipe.detector), "detection")
            self._check_detector(self.detector)
        self.thresholds = self._effective_thresholds()
        for loaded in self._loaded():
            if loaded.card.cam_reference is None:
                log.warning("model %s has no cam_reference in its card: no attention map for it", loaded.card.name)
        try:
            self._prepare_device()
        except torch.cuda.OutOfMemoryError as exc:
            log.warning("CUDA out of memory while loading %r on %s (%s); using the CPU", recipe.name, self._device, exc)
            self._fall_back_to_cpu()
        if warm_up:
            self._warm_up()

    # -- set-up ---------------------------------------------------------------------------
    def _loaded(self) -> list[LoadedModel]:
        return [m for m in (self.classifier, self.detector) if m is not None]

    def _check_classifier(self, loaded: LoadedModel) -> None:
        missing = [c for c in loaded.card.classes if c not in self.recipe.decap_methods]
        if missing:
            raise IncompatibleModelError(
                f"recipe {self.recipe.name!r}{_from(self.recipe)} has no decapsulation method for "
                f"{', '.join(map(repr, missing))} (classes of {loaded.directory / CARD_FILE})",
                self.recipe.origin,
            )

    def _check_detector(self, loaded: LoadedModel) -> None:
        if loaded.card.uses_reference != self.recipe.use_reference:
            needs = "needs" if loaded.card.uses_reference else "does not use"
            raise IncompatibleModelError(
                f"detector {loaded.directory / CARD_FILE} ({loaded.card.input_mode}) {needs} a reference image, "
                f"but recipe {self.recipe.name!r}{_from(self.recipe)} has use_reference={self.recipe.use_reference}",
                loaded.directory / CARD_FILE,
            )

    def _effective_thresholds(self) -> dict[str, float]:
        recipe = self.recipe
        thresholds: dict[str, float] = {}
        if self.classifier is not None:
            card = self.classifier.card
            thresholds["uncertain_below"] = _pick(recipe.uncertain_below, card.thresholds.uncertain_confidence)
            thresholds["temperature"] = float(card.temperature)
        if self.detector is not None:
            card = self.detector.card
            thresholds["score_threshold"] = _pick(recipe.score_threshold, card.thresholds.score)
            thresholds["nms_iou"] = _pick(recipe.nms_iou, card.thresholds.nms_iou)
            thresholds["max_detections"] = float(_pick(recipe.max_detections, card.thresholds.max_det))
        return thresholds

    def _prepare_device(self) -> None:
        cuda = self._device.type == "cuda"
        self._memory_format = torch.channels_last if cuda else torch.contiguous_format
        if cuda:
            # bf16 keeps the classifier's range; box coordinates need fp16's mantissa (bf16 steps
            # by 4 px at 512-1024 px, fp16 by 0.5 px: the difference matters for 5-px defects)
            self._amp_dtypes = {
                "classifier": torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
                "detector": torch.float16,
            }
        for loaded in self._loaded():
            loaded.model.to(self._device, memory_format=self._memory_format)

    def _warm_up(self) -> None:
        """One full pass (attention included) so the first real request is not the slow one."""
        first = (self.classifier or self.detector).card  # type: ignore[union-attr]
        _, height, width = first.input_size
        blank = np.full((height, width, 3), 114, dtype=np.uint8)
        reference = blank if self.recipe.use_reference else None
        # on CUDA the first passes also pick kernels and fill the allocator's cache
        for _ in range(3 if self._device.type == "cuda" else 1):
            self.run(InspectionRequest(-1, blank, reference, want_attention=True))

    # -- public ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def device_description(self) -> str:
        description = describe_device(self._device)
        return description + " (fell back after CUDA out of memory)" if self._fell_back else description

    @property
    def models(self) -> tuple[ModelRef, ...]:
        return tuple(loaded.ref for loaded in self._loaded())

    @property
    def cards(self) -> dict[str, ModelCard]:
        """The loaded models' cards by role ("classifier", "detector")."""
        return {loaded.role: loaded.card for loaded in self._loaded()}

    def run(self, request: InspectionRequest) -> InspectionResult:
        """Inspect one image. Raises ``EngineError`` subclasses for requests it cannot serve."""
        if not self._loaded():
            raise EngineError("the engine is closed")
        self._check_request(request)
        try:
            return self._run(request)
        except torch.cuda.OutOfMemoryError as exc:
            if self._device.type == "cpu":
                raise
            log.warning("CUDA out of memory on %s (%s); continuing on the CPU", self._device, exc)
            self._fall_back_to_cpu()
            return self._run(request)

    def close(self) -> None:
        """Release the models (and GPU memory); the engine cannot run afterwards."""
        cuda = self._device.type == "cuda"
        self.classifier = self.detector = None
        if cuda:
            torch.cuda.empty_cache()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------
    def _fall_back_to_cpu(self) -> None:
        self._device = torch.device("cpu")
        self._fell_back = True
        self._prepare_device()
        with contextlib.suppress(RuntimeError):
            torch.cuda.empty_cache()

    def _check_request(self, request: InspectionRequest) -> None:
        for what, array in (("image", request.image), ("reference", request.reference)):
            if array is None:
                continue
            if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                shape = getattr(array, "shape", None)
                raise InvalidInputError(
                    f"request {request.request_id}: the {what} must be an HxWx3 RGB uint8 array, got "
                    f"{type(array).__name__} {getattr(array, 'dtype', '')} {shape} "
                    "(station.capture.images.to_rgb_uint8 converts grayscale, 16-bit and RGBA)"
                )
            if min(array.shape[:2]) < 1:
                raise InvalidInputError(f"request {request.request_id}: the {what} is empty ({array.shape})")
        if self.recipe.use_reference:
            if request.reference is None:
                raise MissingReferenceError(
                    f"recipe {self.recipe.name!r} compares against a defect-free template image; the request has none"
                )
            if request.reference.shape != request.image.shape:
                raise InvalidInputError(
                    f"request {request.request_id}: the reference is {request.reference.shape[1]}x"
                    f"{request.reference.shape[0]} but the image {request.image.shape[1]}x{request.image.shape[0]}; "
                    "they must be aligned and the same size"
                )

    def _autocast(self, role: str) -> contextlib.AbstractContextManager:
        if self._device.type == "cuda":
            return torch.autocast("cuda", dtype=self._amp_dtypes[role])
        return contextlib.nullcontext()

    def _batch(self, prepared: PreparedInput) -> torch.Tensor:
        tensor = prepared.tensor.unsqueeze(0).to(self._device, non_blocking=True)
        return tensor.contiguous(memory_format=self._memory_format)

    def _run(self, request: InspectionRequest) -> InspectionResult:
        clock = _Stopwatch(self._device)
        start = clock.now()
        image_hw = request.image.shape[:2]
        with clock.stage("preprocess"):
            # each card says how its network sees the image: size, resize or letterbox, mean/std
            inputs = {
                loaded.role: prepare_input(request.image, loaded.card, request.reference) for loaded in self._loaded()
            }

        with clock.stage("preprocess"):
            image_problems = check_frame(self.recipe.image_check, request.image)
        material = defects = None
        material_map = defect_map = None
        if self.classifier is not None:
            material, material_map = self._classify(inputs["classifier"], image_hw, request.want_attention, clock)
            material = route_unfit_frame(material, image_problems)
        if self.detector is not None:
            defects, defect_map = self._detect(inputs["detector"], image_hw, request.want_attention, clock)

        clock.add("total", clock.now() - start)
        return InspectionResult(
            request_id=request.request_id,
            material=material,
            defects=defects or [],
            attention=AttentionMaps(material_map, defect_map) if request.want_attention else None,
            timings_ms=clock.timings_ms,
            device=self.device_description,
            models=self.models,
            thresholds=dict(self.thresholds),
            recipe=self.recipe.name,
            image_size=(int(image_hw[0]), int(image_hw[1])),
            image_problems=image_problems,
        )

    def _classify(
        self, prepared: PreparedInput, image_hw: tuple[int, int], want_attention: bool, clock: _Stopwatch
    ) -> tuple[MaterialCall, np.ndarray | None]:
        loaded = self.classifier
        assert loaded is not None
        card = loaded.card
        images = self._batch(prepared)
        raw_maps = None
        if want_attention and card.cam_reference is not None:
            # one forward gives the logits and the map; its backward is the map's cost
            start = clock.now()
            with self._autocast("classifier"), _TimedGradCam(loaded.model, loaded.model.cam_target_layer, clock) as cam:
                logits, raw_maps = cam(images)
            clock.add("classifier", cam.forward_seconds)
            clock.add("cam", clock.now() - start - cam.forward_seconds)
        else:
            with clock.stage("classifier"), torch.inference_mode(), self._autocast("classifier"):
                logits = loaded.model(images)
        with clock.stage("classifier"):
            # temperature scaling (Guo et al. 2017): calibrated probabilities, same ranking
            probabilities = torch.softmax(logits.float()[0] / card.temperature, dim=0).cpu().tolist()
        best = int(np.argmax(probabilities))
        confidence = float(probabilities[best])
        material = card.classes[best]
        call = MaterialCall(
            classes=tuple(card.classes),
            probabilities=tuple(float(p) for p in probabilities),
            material=material,
            confidence=confidence,
            uncertain=confidence < self.thresholds["uncertain_below"],
            decap_method=self.recipe.decap_methods[material],
        )
        attention = None
        if raw_maps is not None:
            with clock.stage("cam"):  # scaled against the range of the class the map follows
                attention = self._scaled_map(raw_maps, card, image_hw, prepared, material)
        return call, attention

    def _detect(
        self, prepared: PreparedInput, image_hw: tuple[int, int], want_attention: bool, clock: _Stopwatch
    ) -> tuple[list[Defect], np.ndarray | None]:
        loaded = self.detector
        assert loaded is not None
        card = loaded.card
        images = self._batch(prepared)
        with_map = want_attention and card.cam_reference is not None
        letterbox = [prepared.letterbox] if prepared.letterbox is not None else None
        attention = None
        with contextlib.ExitStack() as stack:
            cam = stack.enter_context(EigenCam(loaded.model, loaded.model.cam_target_layer)) if with_map else None
            with clock.stage("detector"), self._autocast("detector"):
                detections = predict_with_views(
                    loaded.model,
                    images,
                    card.test_time_views,
                    score_thresh=self.thresholds["score_threshold"],
                    nms_iou=self.thresholds["nms_iou"],
                    max_det=int(self.thresholds["max_detections"]),
                    letterbox=letterbox,
                )[0]
            if cam is not None:
                with clock.stage("cam"):
                    attention = self._scaled_map(cam.maps(), card, image_hw, prepared)
        return defects_from_detections(detections, card.classes), attention

    def _scaled_map(
        self, raw_maps: torch.Tensor, card: ModelCard, image_hw: tuple[int, int], prepared: PreparedInput,
        class_name: str | None = None,
    ) -> np.ndarray:
        reference = card.cam_reference
        assert reference is not None
        maps = to_image_size(raw_maps.float(), image_hw, prepared.letterbox)
        scaled = scale_to_reference(maps, *reference.range_for(class_name))
        return scaled[0].cpu().numpy().astype(np.float32, copy=False)


def _pick(recipe_value: float | int | None, card_value: float | int) -> float:
    return float(card_value if recipe_value is None else recipe_value)


def _from(recipe: Recipe) -> str:
    return f" ({recipe.origin})" if recipe.origin else ""

