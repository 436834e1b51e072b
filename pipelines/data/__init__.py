"""Data preparation: readers for ERA5 netCDF and ENVI cubes, regridding, zarr artifacts."""
