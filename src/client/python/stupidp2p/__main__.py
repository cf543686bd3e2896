"""``python3 -m stupidp2p COMMAND ...``; the one command is ``chat``."""

from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch the sub-command; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: python3 -m stupidp2p chat --server HOST:PORT --me ID "
              "--peer ID [--wait SEC]\n\nCommands:\n  chat    terminal chat with another "
              "device (see 'chat --help')")
        return 0 if args else 2
    if args[0] == "--version":
        from . import __version__
        print("stupidp2p", __version__)
        return 0
    if args[0] == "chat":
        from .chat import main as chat_main
        return chat_main(args[1:])
    print("python3 -m stupidp2p: unknown command %r (try 'chat')" % args[0],
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
