"""Scores in the fields' own terms: weather (RMSE, MSE, wACC) and images (PSNR, SSIM, SAM)."""
