"""Where the data comes from: the calibrations shipped with the package (calibrations); profiles/ stays in
vramplan.profiles."""
