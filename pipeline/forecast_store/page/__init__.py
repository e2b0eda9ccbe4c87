"""Static files of the map page served at ``/`` (a package so the files ship in wheels)."""
