"""The dataset domain: training views and the published Hugging Face dataset."""
