from sgbridge.cli import main

main()
