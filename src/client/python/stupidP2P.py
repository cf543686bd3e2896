"""The original client's module name: ``from stupidP2P import stupidP2PClient``.

Programs written for the original stupidP2P Python client import this module
by that name; with this directory (or the installed package) on the path
they run unchanged.  The implementation is :mod:`stupidp2p.compat`.
"""

from stupidp2p.compat import stupidP2PClient

__all__ = ["stupidP2PClient"]
