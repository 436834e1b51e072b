from dchag_cli.entry import main

main()
