"""Model source that behaves otherwise inside a package than outside.

Written into modules by the tests (``source_tree`` or ``pytester.makepyfile``).
"""

MISBEHAVES_IN_PACKAGE = """
    import os
    import signal
    import time

    from torch import nn

    IN_PACKAGE = __name__.startswith("<torch_package")


    class Hangs(nn.Module):
        def forward(self, x):
            while IN_PACKAGE:
                time.sleep(0.05)
            return x


    class Crashes(nn.Module):
        def forward(self, x):
            if IN_PACKAGE:
                print("about to crash", flush=True)
                os.kill(os.getpid(), signal.SIGSEGV)
            return x
"""


# A package whose model takes another path in its clone, with the same answer: the
# class it checks against comes from an extern registry, where the original's is.
ISINSTANCE_FALLBACK = {
    "registry.py": "CLASSES = {}\n",
    "model.py": """
        from torch import nn

        from . import registry


        class Config:
            pass


        registry.CLASSES.setdefault("config", Config)


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.config = Config()

            def forward(self, x):
                if isinstance(self.config, registry.CLASSES["config"]):
                    return x * 2
                return x + x  # the same answer, by another path
    """,
}
FALLBACK_LINE = 21  # the line only the original runs, in model.py as written (dedented)
