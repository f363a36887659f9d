from ocirun.cli import launch

launch()
