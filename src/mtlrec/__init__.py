"""mtlrec"""
