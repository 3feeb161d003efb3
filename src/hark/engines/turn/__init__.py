"""End-of-turn models: given the audio of a turn so far, is the speaker done?"""
