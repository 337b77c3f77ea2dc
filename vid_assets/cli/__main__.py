from vid_assets.cli import main

main()
