"""The Dockerfile frontend: text in, checked instructions, stage plans and image-config edits out.

Pure: nothing here touches the filesystem beyond reading the text it is given.
"""
