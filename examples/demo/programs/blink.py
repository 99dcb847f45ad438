"""Demo function block: blinks demo.lamp with period par.blink_period and counts its scans."""

from runtime.program import FunctionBlock, ScanContext


class Blink(FunctionBlock):
    reads = ("par.blink_period",)
    writes = ("demo.lamp", "demo.ticks")

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.phase = 0.0

    def scan(self, ctx: ScanContext) -> None:
        half = ctx["par.blink_period"] / 2
        self.phase += ctx.dt
        if self.phase >= half:
            self.phase -= half * (self.phase // half)
            ctx.write("demo.lamp", not ctx["demo.lamp"])
        ctx.write("demo.ticks", ctx["demo.ticks"] + 1)
