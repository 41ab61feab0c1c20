"""The inference engine: request -> result, synchronous and Qt-free; the station's one inference path.

One ``Engine`` per recipe. It loads the recipe's cards and weights once, picks the device,
warms up, and then serves one thread at a time (the GUI's worker thread, the batch reviewer,
the latency bench):

- ``prepare(image, reference)`` checks one image and makes each model's input from its card
  (``station.ml.cards.prepare_input``) plus the recipe's image check; thread-safe, so the batch
  reviewer runs it on its decode threads.
- ``run_batch(prepared)`` stacks prepared images and runs each network once per batch: the
  classifier (softmax of logits / the card's temperature: calibrated probabilities), the detector
  (``predict`` with the recipe's or the card's thresholds, boxes in image pixels), and, when
  asked, attention maps scaled against each card's fixed ``cam_reference``. Each image's result
  is then assembled in ``_result``, the one place for per-image checks on the outputs.
- Familiarity: a model whose card has ``familiarity`` statistics is scored on its own pooled
  features, caught during the same forward pass (``station.inference.familiarity``), and the
  recipe's part localiser runs in ``prepare``; a frame with no part, or features far from the
  training parts, is NO PART / UNFAMILIAR in ``_result``: its call is uncertain (to a person,
  never accepted) and its boxes are not reported as findings.
- Full resolution: a frame that the detector's letterbox would shrink by more than 1.5× (recipe
  ``tiling``: "auto", "on", "off") is also cut in ``prepare`` into overlapping native-resolution
  tiles of the card's training crop; after the whole-frame pass (which alone feeds the attention
  map and the familiarity check) the tiles go through the detector and their boxes, moved into
  the frame's pixels, are merged with the whole frame's (``station.inference.tiling``).
- ``run(request)`` is ``run_batch`` of one, with attention maps when the request asks.

Precision follows ``station.devices.autocast`` (on CUDA the classifier in bf16 where supported,
the detector in fp16 for its box coordinates), with channels-last inputs. A CUDA out-of-memory
error splits the batch; with one image left it moves the engine to the CPU for good, with a
logged warning, and the image is answered there.

``backend``: "torch", "onnxruntime" (the CPU's faster arithmetic, ``station.inference.onnx_backend``:
every detector pass, EigenCAM map included, and the classifier's passes without Grad-CAM) or
"auto" (ONNX Runtime on the CPU where installed and exportable, else torch; what the capture
window uses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from station.devices import autocast, describe_device, resolve_device
from station.inference.errors import (
    EngineError,
    IncompatibleModelError,
    InvalidCardError,
    InvalidInputError,
    MissingReferenceError,
    UnapprovedModelError,
)
from station.inference.defects import defects_from_detections
from station.inference.familiarity import FamiliarityCheck, FamiliarityScorer, load_statistics, pooled
from station.inference.image_check import check_frame, route_unfit_frame
from station.inference.loading import LoadedModel, load_for_role
from station.inference.onnx_backend import resolve_backend
from station.inference.networks import classifier_logits, detections, tile_detections, to_device
from station.inference.part_region import PartRegion, find_part
from station.inference.recipes import Recipe
from station.inference.tiling import PreparedTiles, merge_detections, prepare_tiles, tile_size, wants_tiles
from station.inference.results import (
    AttentionMaps,
    Defect,
    InspectionRequest,
    InspectionResult,
    MaterialCall,
    ModelRef,
)
from station.ml.cam import EigenCam, GradCam, principal_component_maps, scale_to_reference, to_image_size
from station.ml.cards import CARD_FILE, ModelCard, PreparedInput, prepare_input

log = logging.getLogger(__name__)

STAGES = ("preprocess", "classifier", "detector", "cam", "total")


@dataclass(frozen=True)
class PreparedImage:
    """One image ready for the networks (``Engine.prepare``): each model's input by role."""

    request_id: int
    image_hw: tuple[int, int]
    inputs: dict[str, PreparedInput]  # "classifier", "detector"
    image_problems: tuple[str, ...]  # the recipe's image check (station.inference.image_check)
    preprocess_ms: float
    part_region: PartRegion | None = None  # the recipe's part localiser (station.inference.part_region)
    detector_tiles: PreparedTiles | None = None  # a large frame's native-resolution tiles (station.inference.tiling)


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
    """Runs one recipe. ``device`` is "auto" (CUDA when available), "cpu" or "cuda"; ``backend``
    "torch", "onnxruntime" or "auto" (see the module docstring).

    ``approvals`` (``station.users.approvals.ModelApprovals``) says which models an admin approved;
    by default the station's audit log. A model it does not approve raises UnapprovedModelError.
    """

    def __init__(
        self, recipe: Recipe, device: str = "auto", warm_up: bool = True, approvals=None, backend: str = "torch"
    ) -> None:
        from station.users.approvals import station_approvals

        self.recipe = recipe
        self.approvals = approvals if approvals is not None else station_approvals()
        self._device = resolve_device(device)
        self._fell_back = False
        self.classifier: LoadedModel | None = None
        self.detector: LoadedModel | None = None
        if recipe.classifier is not None:
            self.classifier = load_for_role("classifier", recipe.model_dir(recipe.classifier), "classification")
            self._check_approved(self.classifier)
            self._check_classifier(self.classifier)
        if recipe.detector is not None:
            self.detector = load_for_role("detector", recipe.model_dir(recipe.detector), "detection")
            self._check_approved(self.detector)
            self._check_detector(self.detector)
        self.thresholds = self._effective_thresholds()
        self._familiarity = {loaded.role: self._familiarity_scorer(loaded) for loaded in self._loaded()
                             if loaded.card.familiarity is not None}
        self.backend = resolve_backend(backend, self._device)
        self._runners = self._onnx_runners(fall_back=backend == "auto") if self.backend != "torch" else {}
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

    def _onnx_runners(self, fall_back: bool) -> dict[str, object]:
        """One ONNX Runtime runner per role; with ``fall_back`` ("auto") a model that cannot be
        exported or opened leaves the engine on torch instead of failing the recipe."""
        from station.inference.onnx_backend import onnx_runner
        from station.paths import cache_dir

        if self._device.type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU, not {self._device}")
        try:
            return {loaded.role: onnx_runner(loaded, cache_dir() / "onnx") for loaded in self._loaded()}
        except Exception as exc:  # the exporter and ONNX Runtime raise many kinds; torch still works
            if not fall_back:
                raise
            log.warning("ONNX Runtime unavailable for recipe %r (%s: %s); running on torch",
                        self.recipe.name, type(exc).__name__, exc)
            self.backend = "torch"
            return {}

    def _network(self, loaded: LoadedModel, with_maps: bool) -> object:
        """The forward pass for one role: the ONNX Runtime runner, unless a map needs torch's
        graph (Grad-CAM's gradients, or a detector graph without its EigenCAM tap)."""
        runner = self._runners.get(loaded.role)
        if runner is None:
            return loaded.model
        if with_maps and (loaded.role == "classifier"
                          or getattr(loaded.model, "cam_target_layer", None) not in runner.tapped_layers):
            return loaded.model
        return runner

    @contextlib.contextmanager
    def _tapping(self, loaded: LoadedModel, network: object | None = None) -> Iterator[dict | None]:
        """The tapped layers' outputs of the passes ``network`` (default: the role's network
        without maps) runs inside the block; None when that is the torch model (its hooks catch them)."""
        network = self._network(loaded, with_maps=False) if network is None else network
        if network is loaded.model:
            yield None
            return
        with network.tapping() as taps:  # type: ignore[attr-defined]
            yield taps

    def _check_approved(self, loaded: LoadedModel) -> None:
        from station.ml.cards import file_sha256
        from station.users.approvals import ModelHashes

        # the card's weights_sha256 is the loaded file's (load_model compared them)
        card_file = loaded.directory / CARD_FILE
        try:
            hashes = ModelHashes(loaded.card.name, loaded.card.weights_sha256, file_sha256(card_file))
        except OSError as exc:
            raise UnapprovedModelError(f"cannot read {card_file} to check its approval ({exc})", card_file) from exc
        refusal = self.approvals.refusal(hashes, loaded.directory)
        if refusal is not None:
            raise UnapprovedModelError(refusal, loaded.directory)

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

    def _familiarity_scorer(self, loaded: LoadedModel) -> FamiliarityScorer:
        info = loaded.card.familiarity
        assert info is not None
        path = loaded.directory / info.statistics_file
        try:
            statistics = load_statistics(path, info.layers, info.statistics_sha256)
            return FamiliarityScorer(loaded.card.name, loaded.model, info.layers, statistics, info.limits,
                                     info.joint_limit)
        except (OSError, ValueError) as exc:
            raise InvalidCardError(f"cannot use the familiarity statistics of {loaded.directory / CARD_FILE}: "
                                   f"{exc}", path) from exc

    @property
    def checks_familiarity(self) -> bool:
        """Whether this recipe decides "is this a part the models know?" (statistics or a part localiser)."""
        return bool(self._familiarity) or (
            self.recipe.part_region is not None and self.recipe.part_region.kind != "frame")

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
        for loaded in self._loaded():
            loaded.model.to(self._device, memory_format=torch.channels_last)

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
        description = describe_device(self._device) + (" · ONNX Runtime" if self._runners else "")
        return description + " (fell back after CUDA out of memory)" if self._fell_back else description

    @property
    def models(self) -> tuple[ModelRef, ...]:
        return tuple(loaded.ref for loaded in self._loaded())

    @property
    def cards(self) -> dict[str, ModelCard]:
        """The loaded models' cards by role ("classifier", "detector")."""
        return {loaded.role: loaded.card for loaded in self._loaded()}

    def prepare(
        self, image: np.ndarray, reference: np.ndarray | None = None, *, request_id: int = 0
    ) -> PreparedImage:
        """Check one image and make each model's input from its card, plus the recipe's image check.

        Thread-safe (reads the cards only). Raises ``InvalidInputError`` or ``MissingReferenceError``
        for an image the engine cannot inspect.
        """
        start = time.perf_counter()
        self._check_open()
        self._check_input(request_id, image, reference)
        try:
            # each card says how its network sees the image: size, resize or letterbox, mean/std
            inputs = {loaded.role: prepare_input(image, loaded.card, reference) for loaded in self._loaded()}
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
        problems = check_frame(self.recipe.image_check, image)
        region = find_part(self.recipe.part_region, image)
        height, width = image.shape[:2]
        tiles = None
        if self.detector is not None and wants_tiles(self.recipe.tiling, (height, width), self.detector.card):
            tiles = prepare_tiles(image, self.detector.card, reference)
        return PreparedImage(
            request_id, (int(height), int(width)), inputs, problems, (time.perf_counter() - start) * 1e3, region,
            tiles,
        )

    def run_batch(self, batch: Sequence[PreparedImage], *, want_attention: bool = False) -> list[InspectionResult]:
        """One result per prepared image, in order; each network runs once for the batch, and the
        stage timings are the batch's, shared evenly."""
        self._check_open()
        if not batch:
            return []
        try:
            return self._run_batch(batch, want_attention)
        except torch.cuda.OutOfMemoryError as exc:
            if self._device.type == "cpu":
                raise
            if len(batch) > 1:
                half = len(batch) // 2
                log.warning("CUDA out of memory with a batch of %d on %s; splitting it", len(batch), self._device)
                torch.cuda.empty_cache()
                return (self.run_batch(batch[:half], want_attention=want_attention)
                        + self.run_batch(batch[half:], want_attention=want_attention))
            log.warning("CUDA out of memory on %s (%s); continuing on the CPU", self._device, exc)
            self._fall_back_to_cpu()
            return self._run_batch(batch, want_attention)

    def run(self, request: InspectionRequest) -> InspectionResult:
        """Inspect one image. Raises ``EngineError`` subclasses for requests it cannot serve."""
        prepared = self.prepare(request.image, request.reference, request_id=request.request_id)
        return self.run_batch([prepared], want_attention=request.want_attention)[0]

    def close(self) -> None:
        """Release the models (and GPU memory); the engine cannot run afterwards."""
        cuda = self._device.type == "cuda"
        for scorer in self._familiarity.values():
            scorer.close()
        self._familiarity = {}
        self.classifier = self.detector = None
        self._runners = {}
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

    def _check_open(self) -> None:
        if not self._loaded():
            raise EngineError("the engine is closed")

    def _check_input(self, request_id: int, image: np.ndarray, reference: np.ndarray | None) -> None:
        for what, array in (("image", image), ("reference", reference)):
            if array is None:
                continue
            if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                shape = getattr(array, "shape", None)
                raise InvalidInputError(
                    f"request {request_id}: the {what} must be an HxWx3 RGB uint8 array, got "
                    f"{type(array).__name__} {getattr(array, 'dtype', '')} {shape} "
                    "(station.capture.images.to_rgb_uint8 converts grayscale, 16-bit and RGBA)"
                )
            if min(array.shape[:2]) < 1:
                raise InvalidInputError(f"request {request_id}: the {what} is empty ({array.shape})")
        if self.recipe.use_reference:
            if reference is None:
                raise MissingReferenceError(
                    f"recipe {self.recipe.name!r} compares against a defect-free template image; the request has none"
                )
            if reference.shape != image.shape:
                raise InvalidInputError(
                    f"request {request_id}: the reference is {reference.shape[1]}x{reference.shape[0]} but the "
                    f"image {image.shape[1]}x{image.shape[0]}; they must be aligned and the same size"
                )

    def _run_batch(self, batch: Sequence[PreparedImage], want_attention: bool) -> list[InspectionResult]:
        clock = _Stopwatch(self._device)
        count = len(batch)
        calls: list[MaterialCall | None] = [None] * count
        defects: list[list[Defect]] = [[] for _ in range(count)]
        material_maps: list[np.ndarray | None] = [None] * count
        defect_maps: list[np.ndarray | None] = [None] * count
        scores: dict[str, np.ndarray] = {}  # model name -> familiarity score per image
        if self.classifier is not None:
            calls, material_maps = self._classify(batch, want_attention, clock, scores)  # type: ignore[assignment]
        if self.detector is not None:
            defects, defect_maps = self._detect(batch, want_attention, clock, scores)
        network_ms = {stage: clock.timings_ms[stage] / count for stage in ("classifier", "detector", "cam")}
        return [
            self._result(
                prepared, calls[index], defects[index],
                AttentionMaps(material_maps[index], defect_maps[index]) if want_attention else None, network_ms,
                {name: float(values[index]) for name, values in scores.items()},
            )
            for index, prepared in enumerate(batch)
        ]

    def _score_familiarity(self, role: str, loaded: LoadedModel, taps: dict[str, list[torch.Tensor]] | None,
                           images: torch.Tensor, scores: dict[str, np.ndarray]) -> None:
        """The role's familiarity scores from the features of the forward pass just run: the torch
        model's hooks caught them, or (``taps``) the ONNX Runtime graph handed them back. Should
        neither have them, the torch model runs once more."""
        scorer = self._familiarity.get(role)
        if scorer is None:
            return
        captured = scorer.take()
        if taps is not None:
            captured = [pooled(taps[layer]) if layer in taps else None for layer in scorer.layers]
        if any(features is None for features in captured):
            scorer.arm()
            with torch.inference_mode(), autocast(self._device, role):
                loaded.model(images)
            captured = scorer.take()
        scores[loaded.card.name] = scorer.scores(captured, images.shape[0])

    def _arm(self, role: str) -> None:
        scorer = self._familiarity.get(role)
        if scorer is not None:
            scorer.arm()

    def _result(
        self, prepared: PreparedImage, call: MaterialCall | None, defects: list[Defect],
        attention: AttentionMaps | None, network_ms: dict[str, float], scores: dict[str, float],
    ) -> InspectionResult:
        """One image's result from the batch's outputs: per-image checks on the outputs go here."""
        if call is not None:
            call = route_unfit_frame(call, prepared.image_problems)
        familiarity = None
        suppressed = 0
        region = prepared.part_region
        if self.checks_familiarity:
            part_problem = region.problem if region is not None and not region.found else ""
            familiarity = FamiliarityCheck(scores, part_problem)
            if not familiarity.familiar:
                # not a part the models know: no call to accept, and its boxes are no findings
                if call is not None and not call.uncertain:
                    call = dataclasses.replace(call, uncertain=True)
                suppressed, defects = len(defects), []
        attention_on_part = None
        if attention is not None and region is not None:
            attention_on_part = region.share_inside(
                attention.material if attention.material is not None else attention.defects)
        timings = {"preprocess": prepared.preprocess_ms, **network_ms}
        timings["total"] = sum(timings.values())
        return InspectionResult(
            request_id=prepared.request_id,
            material=call,
            defects=defects,
            attention=attention,
            timings_ms={stage: timings[stage] for stage in STAGES},
            device=self.device_description,
            models=self.models,
            thresholds=dict(self.thresholds),
            recipe=self.recipe.name,
            image_size=prepared.image_hw,
            image_problems=prepared.image_problems,
            familiarity=familiarity,
            suppressed_defects=suppressed,
            attention_on_part=attention_on_part,
            detector_tiles=len(prepared.detector_tiles.grid) if prepared.detector_tiles is not None else 0,
        )

    def _classify(
        self, batch: Sequence[PreparedImage], want_attention: bool, clock: _Stopwatch, scores: dict[str, np.ndarray]
    ) -> tuple[list[MaterialCall], list[np.ndarray | None]]:
        loaded = self.classifier
        assert loaded is not None
        card = loaded.card
        inputs = [prepared.inputs["classifier"] for prepared in batch]
        raw_maps = None
        images = to_device([i.tensor for i in inputs], self._device)
        self._arm("classifier")
        if want_attention and card.cam_reference is not None:
            # one forward gives the logits and the maps; its backward is the maps' cost
            start = clock.now()
            taps = None
            with autocast(self._device, "classifier"), _TimedGradCam(loaded.model, loaded.model.cam_target_layer, clock) as cam:
                logits, raw_maps = cam(images)
            clock.add("classifier", cam.forward_seconds)
            clock.add("cam", clock.now() - start - cam.forward_seconds)
        else:
            with clock.stage("classifier"), self._tapping(loaded) as taps:
                logits = classifier_logits(self._network(loaded, with_maps=False), images, self._device)
        with clock.stage("classifier"):
            self._score_familiarity("classifier", loaded, taps, images, scores)
            # temperature scaling (Guo et al. 2017): calibrated probabilities, same ranking
            probabilities = torch.softmax(logits.float() / card.temperature, dim=1).cpu().numpy()
        calls = [self._material_call(card, row) for row in probabilities]
        maps: list[np.ndarray | None] = [None] * len(batch)
        if raw_maps is not None:
            with clock.stage("cam"):  # scaled against the range of the class each map follows
                maps = [
                    self._scaled_map(raw_maps[index : index + 1], card, prepared.image_hw, inputs[index], call.material)
                    for index, (prepared, call) in enumerate(zip(batch, calls))
                ]
        return calls, maps

    def _material_call(self, card: ModelCard, probabilities: np.ndarray) -> MaterialCall:
        best = int(np.argmax(probabilities))
        confidence = float(probabilities[best])
        material = card.classes[best]
        return MaterialCall(
            classes=tuple(card.classes),
            probabilities=tuple(float(p) for p in probabilities),
            material=material,
            confidence=confidence,
            uncertain=confidence < self.thresholds["uncertain_below"],
            decap_method=self.recipe.decap_methods[material],
        )

    def _detect(
        self, batch: Sequence[PreparedImage], want_attention: bool, clock: _Stopwatch, scores: dict[str, np.ndarray]
    ) -> tuple[list[list[Defect]], list[np.ndarray | None]]:
        loaded = self.detector
        assert loaded is not None
        card = loaded.card
        inputs = [prepared.inputs["detector"] for prepared in batch]
        maps: list[np.ndarray | None] = [None] * len(batch)
        with contextlib.ExitStack() as stack:
            with_map = want_attention and card.cam_reference is not None
            network = self._network(loaded, with_map)
            taps = stack.enter_context(self._tapping(loaded, network))
            cam = stack.enter_context(EigenCam(network, network.cam_target_layer)) if with_map and taps is None else None
            with clock.stage("detector"):
                images = to_device([i.tensor for i in inputs], self._device)
                self._arm("detector")
                found = detections(
                    network,
                    images,
                    self._device,
                    views=card.test_time_views,
                    score_thresh=self.thresholds["score_threshold"],
                    nms_iou=self.thresholds["nms_iou"],
                    max_det=int(self.thresholds["max_detections"]),
                    letterboxes=[i.letterbox for i in inputs],
                )
                self._score_familiarity("detector", loaded, taps, images, scores)
            if with_map:
                with clock.stage("cam"):
                    # EigenCAM of the last pass (the identity view): torch's hook or the graph's tap
                    raw_maps = cam.maps() if cam is not None else principal_component_maps(
                        taps[loaded.model.cam_target_layer][0])
                    maps = [
                        self._scaled_map(raw_maps[index : index + 1], card, prepared.image_hw, inputs[index])
                        for index, prepared in enumerate(batch)
                    ]
        with clock.stage("detector"):
            # after the whole-frame pass: its hooks (attention map, familiarity) saw that pass only
            found = [self._with_tiles(found[index], prepared.detector_tiles) for index, prepared in enumerate(batch)]
        return [defects_from_detections(item, card.classes) for item in found], maps

    def _with_tiles(self, whole_frame: dict[str, torch.Tensor], tiles: PreparedTiles | None) -> dict[str, torch.Tensor]:
        """The whole frame's detections merged with its tiles' (``station.inference.tiling``); the
        ONNX Runtime graph has the card's input size, so it runs only tiles of that size."""
        if tiles is None:
            return whole_frame
        loaded = self.detector
        assert loaded is not None
        card = loaded.card
        onnx_fits = tile_size(card) == tuple(card.input_size[1:])
        network = self._network(loaded, with_maps=False) if onnx_fits else loaded.model
        max_det = int(self.thresholds["max_detections"])
        per_tile = tile_detections(
            network, tiles, card, self._device, views=card.test_time_views,
            score_thresh=self.thresholds["score_threshold"], nms_iou=self.thresholds["nms_iou"], max_det=max_det,
        )
        return merge_detections(per_tile, max_det, whole_frame)

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
