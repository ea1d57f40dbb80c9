"""Wire formats of ISO 8073 / X.224: TPDUs, parameters, checksum, TPKT framing.

Nothing in this package does I/O.

Each TPDU and each parameter is defined once, as a dataclass with its wire
definition on top: TPDUs in :mod:`.tpdu`, parameters in :mod:`.params` (their
docstrings say how to add one); :mod:`.defs` turns the definitions into the
construct formats, the struct fast paths and the descriptions. :mod:`.inline`
reads and writes the class 0 CRs and CCs of RDP, whose header carries octets
that are not parameters.
"""

from . import checksum, constants, errors, inline, params, tpdu
from .checksum import *  # noqa: F403
from .constants import *  # noqa: F403
from .errors import *  # noqa: F403
from .inline import *  # noqa: F403
from .params import *  # noqa: F403
from .tpdu import *  # noqa: F403
from .tpkt import TPKTDecoder, encode_tpkt

# The public names of each module, as asyncio's __init__ gathers its modules'.
__all__ = ["TPKTDecoder", "encode_tpkt"]
__all__ += checksum.__all__
__all__ += constants.__all__
__all__ += errors.__all__
__all__ += inline.__all__
__all__ += params.__all__
__all__ += tpdu.__all__
