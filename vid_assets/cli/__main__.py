from vid_assets.cli import app

app()
