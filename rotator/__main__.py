from rotator.cli.commands import main

main()
