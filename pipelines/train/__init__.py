"""Training stages: MAE pretraining and forecasting on dchag artifacts, on 1…N ranks."""
