"""pytest plugin: run any test suite with Captum patched (``python -m pytest -p pyattrib.compat.patched``).

Calls :func:`pyattrib.compat.patch_captum` before the suite's modules are imported, so a library
built on Captum (its ``from captum import attr`` included) runs its own tests on compat's
classes. ``PYATTRIB_PATCH_BROKEN=1`` makes every twin's ``attribute`` raise instead: the same
run then fails wherever the patch is reached, which proves that it is.
"""

from __future__ import annotations

import os
from typing import Any


def pytest_configure(config: Any) -> None:
    from . import patch_captum

    if os.environ.get("PYATTRIB_PATCH_BROKEN"):
        from . import captum_twins
        from .patch import broken_twin, import_captum, swap

        import_captum()
        swap({id(original): broken_twin(twin) for original, twin in captum_twins().values()})
        return
    patch_captum()
