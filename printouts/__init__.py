"""Printing attacked images and photographing the prints (virtually).

- :mod:`physadv.printouts.sheets`: PDF sheets with ArUco corner markers, QR codes and a pixel-exact grid.
- :mod:`physadv.printouts.manifest`: the manifest schema (what is where on every page).
- :mod:`physadv.printouts.camera`: synthetic photos of the sheets with their true page homography.
- :mod:`physadv.printouts.pdf`: opening and rendering the sheets.
"""
