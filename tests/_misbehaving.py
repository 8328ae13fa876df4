"""Model source that behaves only outside a package: the original runs, its clone does not.

Written into a module by the tests (``source_tree`` or ``pytester.makepyfile``).
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
