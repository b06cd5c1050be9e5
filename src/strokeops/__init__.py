"""strokeops: the stroke-risk model as a service, from raw file to served champion."""

__version__ = "0.1.0"
