"""moto's DynamoDB server (Apache-2.0) on loopback: the local endpoint where the setting
EXECUTION_STREAM_LOCAL_DYNAMODB is `moto` (dynoxide is the default).

It keeps its tables in memory; its Query reads the whole table, and each request costs more CPU.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import ClassVar

from execution_stream.dev_stack.local_dynamodb import LocalDynamoDB


@dataclass
class MotoServer(LocalDynamoDB):
    name: ClassVar[str] = "moto"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "execution_stream.dev_stack.moto_dynamodb", "127.0.0.1", str(self.port)]
