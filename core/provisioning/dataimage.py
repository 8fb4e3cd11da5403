"""DataImage on the engine: an ISO in a provisioned host's virtual CD (Ironic's vmedia API).

Upstream BMO asks Ironic to attach and detach the image (`PUT/DELETE /v1/nodes/<id>/vmedia`) and
to read whether anything is inserted; here the engine talks to the BMC's virtual media directly,
through the same Boot capability the ramdisk boot uses. A host whose driver has no virtual media
(IPMI) gets the driver's "does not support virtual media" error. The CD holding a live ISO (the
host's own OS, `image.format: live-iso`) is refused by the DataImage reconciler before this.
"""

from metalcubed.core import bmc
from metalcubed.core.provisioning.context import Ctx


def attached(ctx: Ctx) -> bool:
    """Whether the virtual CD holds an image."""
    return ctx.driver.boot.media_state(ctx.access, device=bmc.MediaDevice.CD).inserted


def attach(ctx: Ctx, url: str) -> None:
    """Have the virtual CD hold `url` (another image is ejected first)."""
    ctx.ensure_media(url)


def detach(ctx: Ctx) -> None:
    """Empty the virtual CD (a no-op when it is empty)."""
    state = ctx.driver.boot.media_state(ctx.access, device=bmc.MediaDevice.CD)
    if state.inserted:
        ctx.driver.boot.eject_media(ctx.access, device=bmc.MediaDevice.CD)
