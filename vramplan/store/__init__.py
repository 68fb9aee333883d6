"""Where the calibrations come from: the ones shipped with the package and the user's own on top
(calibrations), the user's folders (user), one calibration as one file to share (share). profiles/ stays in
vramplan.profiles."""
