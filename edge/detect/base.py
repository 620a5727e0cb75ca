"""What the pipeline needs from a face detector, whatever network or runtime is behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from numpy.typing import ArrayLike

    from edge.types import Box, Detection


@runtime_checkable
class Detector(Protocol):
    def detect(
        self,
        image: np.ndarray,
        regions: Sequence[Box] | None = None,
        follow: ArrayLike | None = None,
    ) -> list[Detection]:
        """Faces in a BGR uint8 frame, in frame pixels. `regions`: search only there (None:
        the whole frame; []: nowhere). `follow`: (x1, y1, x2, y2) boxes of the faces seen in
        the previous frame, to confirm where they were before searching for new ones."""
        ...

    def info(self) -> dict:
        """Name, version, backend and precision, as events carry them."""
        ...
