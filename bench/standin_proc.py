"""The Mistral stand-in in a process of its own, every key of a file answered as ``valid``.

A benchmark that times the verifier must not share a GIL with the server it talks to.
Prints ``URL`` on the first line of stdout once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from rotator.demo.standin import MistralStandIn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, required=True)
    parser.add_argument("--keys-file", type=Path, required=True, help="one key value a line")
    args = parser.parse_args()
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with MistralStandIn(latency=args.latency) as standin:
        for line in args.keys_file.read_text().splitlines():
            if line.strip():
                standin.set_key(line.strip(), "valid")
        print(standin.url, flush=True)
        done.wait()


if __name__ == "__main__":
    main()
