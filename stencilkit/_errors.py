"""The exceptions stencilkit raises for bad kernels and bad arguments."""


class StencilError(ValueError):
    """A kernel that stencilkit cannot compile, or arguments that do not fit it."""


class StencilTypeError(TypeError):
    """A kernel argument or option of the wrong type."""
