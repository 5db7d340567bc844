import functools

import torch
from torch import nn

from ssl_lab.modeling.meta_arch import META_ARCH_REGISTRY

from .monitor import embedding_collapse_metrics
from .regularizers import EmbeddingRegularizers, build_regularizers


class RegularizedMixin(nn.Module):
    """Mixed in before a method's class: adds the MSBReg regularizers on its online embeddings.

    The embeddings are what one submodule (e.g. BYOL's "predictor") returns during forward:
    each call gives (V * N, D) for V views of the N images; the calls are stacked to
    (V', N, D). The method's own losses are returned unchanged.
    """

    def attach_regularizers(self, embedding_module: str, regularizers: EmbeddingRegularizers) -> None:
        """Regularize (and monitor) the outputs of the submodule named `embedding_module`."""
        self.regularizers = regularizers
        self._captured = None  # a list only while forward runs
        self.get_submodule(embedding_module).register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        if self._captured is not None:
            self._captured.append(output)

    def forward(self, views):
        """views: list of V tensors (N, 3, H, W) -> the method's losses + loss_singular / loss_brownian,
        and the collapse/embedding_* metrics."""
        self._captured = []
        try:
            losses = super().forward(views)
            embeddings = torch.cat(self._captured)
        finally:
            self._captured = None
        regularizers = self.regularizers(embeddings.unflatten(0, (-1, views[0].shape[0])))
        return {**losses, **regularizers, **embedding_collapse_metrics(embeddings)}


@functools.lru_cache(maxsize=None)
def regularized_class(method_cls: type) -> type:
    """The subclass of meta-architecture `method_cls` with RegularizedMixin mixed in (one per method)."""
    return type(f"Regularized{method_cls.__name__}", (RegularizedMixin, method_cls), {})


@META_ARCH_REGISTRY.register()
def Regularized(cfg):  # noqa: N802 (the registered name)
    """META_ARCHITECTURE "Regularized": MODEL.REGULARIZED.META_ARCHITECTURE plus the MSBReg regularizers.

    The model built is still that method (a subclass of it): same parameter names, so
    checkpoints load either way and convert to detectron2; same `backbone` and `momentum_update`.
    """
    node = cfg.MODEL.REGULARIZED
    model = regularized_class(META_ARCH_REGISTRY.get(node.META_ARCHITECTURE))(cfg)
    model.attach_regularizers(node.EMBEDDING_MODULE, build_regularizers(cfg))
    return model
