from dchag_cli.app import main

main()
