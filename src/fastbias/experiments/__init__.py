"""One module per paper figure: ``run()`` computes, ``plot()`` only draws."""
