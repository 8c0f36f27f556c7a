"""Shared package of the Grad-CAM tumour-detection reproduction study.

Every notebook is a narrative of calls into these modules; the CLI
(``camstudy``) and the app hold no logic of their own.
"""

__version__ = "0.1.0"
