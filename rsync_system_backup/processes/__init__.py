"""The processes of a run: orderly stops on signals, commands out of the terminal's reach, failures explained."""
